pt_unit_test(observe access_log DEPS pt_observe)
pt_unit_test(observe metrics DEPS pt_observe)
