pt_unit_test(core strutil DEPS pt_core)
