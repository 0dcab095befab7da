# tests/security/: weftd's tcp endpoint with CURVE keys and ZAP, roles,
# tenant isolation, path escapes and limits, over real sockets and processes.
TESTS += tests/security/test_auth.py
EXTRA_DIST += tests/security/test_auth.py
# weftd answers while clients flood it with maximum-size requests.
TESTS += tests/security/test_flood.py
EXTRA_DIST += tests/security/test_flood.py
