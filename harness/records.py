"""Scoring records the service tests share."""

# The intake of a young man using crack: with poor scales, the high-risk client of the service
# and browser tests.
CRACK_INTAKE = {
    "admission_date": "2024-03-01",
    "age": 34,
    "sex": "male",
    "primary_substance": "crack",
    "crack_days_28": 20,
    "age_first_use": 15,
}

# Every motivation, support, distress and coping scale at its favourable end: the browser test's
# low-risk client, and the end point the serving test bisects towards to find a moderate record.
FAVOURABLE_SCALES = {
    "mot_problem_recognition": 46,
    "mot_desire_for_help": 47,
    "mot_treatment_readiness": 46,
    "self_efficacy": 44,
    "social_support": 45,
    "psych_distress": 6,
    "coping_adaptive": 3.6,
    "coping_avoidant": 1.3,
}
