pt_unit_test(observe access_log DEPS pt_observe)
