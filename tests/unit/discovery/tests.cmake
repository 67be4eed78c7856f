pt_unit_test(discovery dns_msg DEPS pt_discovery)
pt_unit_test(discovery leases DEPS pt_discovery)
