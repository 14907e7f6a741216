# Integration tests against quench-devkafka (label integration) and the schema lint (label lint).
# Included from tests/CMakeLists.txt, so CMAKE_CURRENT_LIST_DIR is tests/integration. They need
# Debian's /usr/bin/python3 with python3-confluent-kafka and python3-jsonschema, and kcat.
# Each integration test starts its own quench-devkafka on 127.0.0.1 (random ports); the kafka
# resource lock keeps them from running side by side on small machines.

set(QN_INTEGRATION_ENV
    "QN_BIN_DIR=${CMAKE_BINARY_DIR}/bin;QN_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

foreach(name pipeline crash_recovery)
    add_test(NAME integration.${name}
             COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_${name}.py)
    set_tests_properties(integration.${name} PROPERTIES
        ENVIRONMENT "${QN_INTEGRATION_ENV}"
        LABELS integration
        TIMEOUT 300
        RESOURCE_LOCK kafka)
endforeach()

add_test(NAME lint.schemas
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/../tools/check_schemas.py)
set_tests_properties(lint.schemas PROPERTIES LABELS lint TIMEOUT 120)
