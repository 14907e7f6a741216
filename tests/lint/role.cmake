# lint.role: docker/azure-role.json and docker/azure-role-delete-resource.json grant exactly the
# Azure RBAC actions of the ARM calls in worker/, and docker/graph-permissions.md names them all
# (tests/lint/test_role.py). Included from tests/CMakeLists.txt; plain /usr/bin/python3, no build
# output needed.
add_test(NAME lint.role
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_role.py --source ${CMAKE_SOURCE_DIR})
set_tests_properties(lint.role PROPERTIES LABELS lint TIMEOUT 60)
