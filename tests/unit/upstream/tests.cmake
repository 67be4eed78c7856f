pt_unit_test(upstream breaker DEPS pt_upstream)
