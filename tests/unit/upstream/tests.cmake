pt_unit_test(upstream lb DEPS pt_upstream)
pt_unit_test(upstream breaker DEPS pt_upstream)
pt_unit_test(upstream health DEPS pt_upstream)
pt_unit_test(upstream retry DEPS pt_upstream)
