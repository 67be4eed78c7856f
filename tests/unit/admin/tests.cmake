pt_unit_test(admin desc DEPS pt_admin)
pt_unit_test(admin status DEPS pt_admin)
pt_unit_test(admin rest DEPS pt_admin)
