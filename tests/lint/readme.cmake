# lint.readme: README.md against the code (tests/lint/test_readme.py): the configuration reference
# is what tests/tools/config_reference.py generates from schemas/config.schema.json, every metric
# the code registers is in the Metrics section, the quick start's two commands come first, every
# task kind has a permissions row, and relative links resolve. Included from tests/CMakeLists.txt;
# plain /usr/bin/python3, no build output needed.
add_test(NAME lint.readme
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_readme.py --source ${CMAKE_SOURCE_DIR})
set_tests_properties(lint.readme PROPERTIES LABELS lint TIMEOUT 60)
