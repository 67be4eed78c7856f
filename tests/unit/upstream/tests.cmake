pt_unit_test(upstream lb DEPS pt_upstream)
