pt_unit_test(http1 parser DEPS pt_http1)
pt_unit_test(http1 writer DEPS pt_http1)
