pt_unit_test(proxy chain DEPS pt_proxy)
pt_unit_test(proxy select DEPS pt_proxy)
