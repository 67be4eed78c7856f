pt_fuzz_target(dns_answer DEPS pt_discovery)
