pt_unit_test(net client_cert DEPS pt_net pt_core)
pt_unit_test(net tls DEPS pt_net pt_core)
