pt_unit_test(proxy chain DEPS pt_proxy)
