# End-to-end tests of the response (issue 4; label e2e): `quench run` + quench-devkafka + the
# Azure simulator (tests/azure-sim), one ctest per group of tests/e2e/test_response.py.
# Included from tests/CMakeLists.txt; CMAKE_CURRENT_LIST_DIR is tests/e2e. They need Debian's
# /usr/bin/python3 with python3-confluent-kafka and python3-jsonschema, and openssl (the
# simulator makes its CA). Everything listens on 127.0.0.1 only. The whole label takes about
# 2-3 minutes; the kafka resource lock keeps them from running beside the integration tests.

set(QN_E2E_ENV "QN_BIN_DIR=${CMAKE_BINARY_DIR}/bin;QN_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

foreach(group users subscriptions vms combined dismiss deadline cancel forged kill_switch
              scope caps)
    add_test(NAME e2e.${group}
             COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_response.py ${group})
    set_tests_properties(e2e.${group} PROPERTIES
        ENVIRONMENT "${QN_E2E_ENV}"
        LABELS e2e
        TIMEOUT 600
        RESOURCE_LOCK kafka)
endforeach()

# The scenario files are generated from basic.json; this fails when they are out of date.
add_test(NAME e2e.scenarios_current
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/make_scenarios.py --check)
set_tests_properties(e2e.scenarios_current PROPERTIES LABELS "e2e;lint" TIMEOUT 60)
