# The Azure client of common/ against the Azure simulator (tests/azure-sim): quench-aztool drives
# the client, Python drivers start the simulator, run the tool and check its output and the
# simulator's request log. Included from tests/CMakeLists.txt.

add_executable(quench-aztool ${CMAKE_CURRENT_SOURCE_DIR}/azure-it/aztool.c)
target_link_libraries(quench-aztool PRIVATE qn_common)
set_target_properties(quench-aztool PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)

set(QN_AZIT_ENV
    QN_BIN_DIR=${CMAKE_BINARY_DIR}/bin
    QN_SOURCE_DIR=${CMAKE_SOURCE_DIR}
    PYTHONDONTWRITEBYTECODE=1)

# qn_add_azure_test(NAME COMMAND... ): one integration test that owns the simulator lock.
function(qn_add_azure_test name timeout)
    add_test(NAME integration.${name} COMMAND ${ARGN} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(integration.${name} PROPERTIES
        LABELS integration
        RESOURCE_LOCK azure-sim
        TIMEOUT ${timeout}
        ENVIRONMENT "${QN_AZIT_ENV}")
endfunction()

foreach(name identity retry post_replay lro_paging hostile tls)
    qn_add_azure_test(azure_${name} 180
        ${QN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/azure-it/test_${name}.py)
endforeach()

# The simulator answers the reference examples as documented.
qn_add_azure_test(azure_sim_reference 300
    ${QN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/azure-sim/test_reference.py)

# 5,000 reads over 10 subscriptions: no 429 from the simulator. The ratio to the buckets'
# minimum time is printed (bench/azure-burst's figures line), not asserted: timing is the
# benchmark's business.
qn_add_azure_test(azure_burst 240
    ${QN_PYTHON} ${CMAKE_SOURCE_DIR}/bench/azure-burst --bin ${CMAKE_BINARY_DIR}/bin
    --requests 5000 --subscriptions 10 --check-no-429)

# Kafka SASL/OAUTHBEARER with Entra ID tokens (worker/kafka_oauth.c): quench-oauthtool runs the
# worker's token refresh callback in a librdkafka producer; test_oauthbearer.py checks that the
# simulator's token reaches librdkafka and a small SASL broker, and that the docker/eventhubs
# presets load.
add_executable(quench-oauthtool ${CMAKE_CURRENT_SOURCE_DIR}/azure-it/oauthtool.c)
target_link_libraries(quench-oauthtool PRIVATE qn_worker qn_common)
set_target_properties(quench-oauthtool PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
qn_add_azure_test(azure_oauthbearer 180
    ${QN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/azure-it/test_oauthbearer.py)
