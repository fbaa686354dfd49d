// Renders the service's OpenAPI document (/docs.json) as plain HTML, offline.
"use strict";

function el(tag, text, cls) {
  const n = document.createElement(tag);
  if (text !== undefined && text !== null) n.textContent = String(text);
  if (cls) n.className = cls;
  return n;
}

function typeOf(s) {
  if (!s) return "";
  if (s.anyOf) return s.anyOf.map(typeOf).filter((t) => t !== "null").join(" | ");
  if (s.enum) return "code";
  if (s.const !== undefined) return "code";
  if (s.format) return s.type + " (" + s.format + ")";
  return s.type || (s.$ref ? s.$ref.split("/").pop() : "");
}

function allowed(s) {
  if (!s) return "";
  if (s.anyOf) return s.anyOf.map(allowed).filter(Boolean).join(" ");
  const parts = [];
  if (s.enum) parts.push("one of " + s.enum.join(", "));
  if (s.minimum !== undefined || s.maximum !== undefined) parts.push(`${s.minimum ?? ""}..${s.maximum ?? ""}`);
  if (s.pattern) parts.push("pattern " + s.pattern);
  if (s.maxItems !== undefined) parts.push("at most " + s.maxItems + " items");
  return parts.join("; ");
}

function resolve(spec, s) {
  if (s && s.$ref) return spec.components.schemas[s.$ref.split("/").pop()] || s;
  return s;
}

function propsTable(spec, schema) {
  schema = resolve(spec, schema);
  const t = el("table");
  const head = el("tr");
  for (const h of ["field", "type", "allowed", "required", "description"]) head.append(el("th", h));
  t.append(head);
  const req = new Set(schema.required || []);
  for (const [name, p] of Object.entries(schema.properties || {})) {
    const tr = el("tr");
    tr.append(el("td", name), el("td", typeOf(p)), el("td", allowed(p)), el("td", req.has(name) ? "yes" : ""),
      el("td", p.description || (p.items && p.items.$ref ? "array of " + p.items.$ref.split("/").pop() : "")));
    t.append(tr);
  }
  return t;
}

async function main() {
  const spec = await (await fetch("/docs.json")).json();
  document.getElementById("example").textContent =
    "curl -s http://127.0.0.1:3000/score \\\n  -H 'Authorization: Bearer $KEY' -H 'Content-Type: application/json' \\\n" +
    "  -d '{\"admission_id\": \"A0001\", \"service_id\": \"S1\", \"admission_date\": \"2024-03-01\", \"age\": 34,\n" +
    "       \"sex\": \"male\", \"primary_substance\": \"crack\", \"mot_desire_for_help\": 18, \"social_support\": 22}'";
  const box = document.getElementById("routes");
  const order = ["/score", "/score_batch", "/model", "/livez", "/readyz", "/metrics"];
  const paths = Object.keys(spec.paths).sort((a, b) => (order.indexOf(a) + 99) % 99 - (order.indexOf(b) + 99) % 99);
  for (const path of paths) {
    for (const [method, op] of Object.entries(spec.paths[path])) {
      const sec = el("section", null, "card route");
      const h = el("h2");
      h.append(el("span", method.toUpperCase(), "method " + method), el("code", path));
      sec.append(h);
      if (op.summary) sec.append(el("p", op.summary));
      if (op.description) sec.append(el("p", op.description));
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body && body.schema) {
        const s = resolve(spec, body.schema);
        if (s.title === "ScoringRecord") {
          sec.append(el("p", "Body: one scoring record (see the table at the end of this page)."));
        } else {
          sec.append(el("h3", "Request body"), propsTable(spec, s));
        }
      }
      const ok = op.responses && op.responses["200"] && op.responses["200"].content;
      const okSchema = ok && ok["application/json"] && ok["application/json"].schema;
      if (okSchema && resolve(spec, okSchema).properties) {
        sec.append(el("h3", "Response (200)"), propsTable(spec, okSchema));
      }
      box.append(sec);
    }
  }
  const record = spec.components.schemas.ScoringRecord;
  const tbody = document.querySelector("#record-table tbody");
  const req = new Set(record.required || []);
  for (const [name, p] of Object.entries(record.properties)) {
    const tr = el("tr");
    tr.append(el("td", name), el("td", typeOf(p)), el("td", allowed(p)), el("td", req.has(name) ? "yes" : ""), el("td", p.description || ""));
    tbody.append(tr);
  }
}

main().catch((e) => {
  document.getElementById("routes").append(el("p", "Could not load /docs.json: " + e, "status error"));
});
