# `quench replay-dlq` against quench-devkafka (integration.replay_dlq) and `quench check-config`
# (integration.check_config), both from tests/integration/test_replay_dlq.py. Included from
# tests/CMakeLists.txt, so CMAKE_CURRENT_LIST_DIR is tests/integration. They need Debian's
# /usr/bin/python3 with python3-confluent-kafka and kcat, like the other integration tests.
set(QN_REPLAY_TEST_ENV "QN_BIN_DIR=${CMAKE_BINARY_DIR}/bin;QN_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

add_test(NAME integration.replay_dlq
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_replay_dlq.py)
add_test(NAME integration.check_config
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_replay_dlq.py --check-config)
set_tests_properties(integration.replay_dlq integration.check_config PROPERTIES
    ENVIRONMENT "${QN_REPLAY_TEST_ENV}"
    LABELS integration
    TIMEOUT 300
    RESOURCE_LOCK kafka)
