# lint.dockerfile: static checks of docker/Dockerfile, docker/Dockerfile.dockerignore and
# docker/compose.yaml (no Docker engine is needed or used; see tests/lint/test_dockerfile.py).
# Included from tests/CMakeLists.txt, so CMAKE_CURRENT_LIST_DIR is tests/lint. QN_BIN_DIR lets it
# run `quench check-config` on docker/compose/config.json (skipped when quench is not built).

add_test(NAME lint.dockerfile
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_dockerfile.py)
set_tests_properties(lint.dockerfile PROPERTIES
    ENVIRONMENT "QN_BIN_DIR=${CMAKE_BINARY_DIR}/bin"
    LABELS lint
    TIMEOUT 120)
