pt_unit_test(http path DEPS pt_http pt_core)
pt_unit_test(http pipe DEPS pt_http pt_core)
pt_unit_test(http exchange DEPS pt_http pt_core)
