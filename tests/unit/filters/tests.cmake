pt_unit_test(filters field DEPS pt_filters pt_core)
pt_unit_test(filters request_id DEPS pt_filters pt_http pt_conf pt_core Threads::Threads)
pt_unit_test(filters headers DEPS pt_filters pt_http pt_conf pt_core)
pt_unit_test(filters builtin DEPS pt_filters pt_http pt_conf pt_core)
