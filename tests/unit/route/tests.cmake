pt_unit_test(route template DEPS pt_route)
pt_unit_test(route router DEPS pt_route)
pt_unit_test(route router_random DEPS pt_route)
