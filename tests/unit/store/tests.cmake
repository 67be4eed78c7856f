pt_unit_test(store pg_proj DEPS pt_store)

# The PostgreSQL store against a real server: with_pg.py starts a throw-away
# PostgreSQL (tests/integration/pgserver.py) and runs the test in it. Labelled
# integration: it needs the postgresql server package.
file(GLOB pt_pg_bindirs /usr/lib/postgresql/*/bin)
find_program(PT_PG_POSTGRES postgres HINTS ${pt_pg_bindirs})
add_executable(test_store_pg ${CMAKE_CURRENT_SOURCE_DIR}/unit/store/test_pg.c)
target_link_libraries(test_store_pg PRIVATE PkgConfig::CMOCKA pt_store Threads::Threads)
if(PT_PG_POSTGRES)
  add_test(NAME integration/store/pg
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/unit/store/with_pg.py
                   $<TARGET_FILE:test_store_pg>)
  set_tests_properties(integration/store/pg PROPERTIES LABELS integration TIMEOUT 300
                       ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
else()
  message(STATUS "store: PostgreSQL server binaries not found; integration/store/pg not registered")
endif()
