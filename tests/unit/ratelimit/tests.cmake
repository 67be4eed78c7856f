pt_unit_test(ratelimit algo DEPS pt_ratelimit)
pt_unit_test(ratelimit key DEPS pt_ratelimit)
pt_unit_test(ratelimit table DEPS pt_ratelimit)
