pt_unit_test(ratelimit algo DEPS pt_ratelimit)
