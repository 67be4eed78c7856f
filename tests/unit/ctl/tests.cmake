pt_unit_test(ctl cli DEPS pt_ctl)
