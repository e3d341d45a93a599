// Every test binary starts here.  mproc_main() comes first: in a child
// started by spawn it runs the requested entry and exits, so GoogleTest
// never starts in children (the __main__ guard, made explicit).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "test_util.h"

int main(int argc, char **argv) {
  static std::vector<mproc_entry> table;
  table = test_entries();
  table.push_back(mproc_entry MPROC_ENTRY_END);
  int rc = mproc_main(argc, argv, table.data());
  test_main_rc = rc;
  // A test that checks what later calls say after mproc_main failed runs
  // the binary with this set, so that main goes on as a careless program
  // would (tests/test_process.cc, Init.*).
  const char *go_on = std::getenv("MPROC_TEST_IGNORE_MAIN_FAILURE");
  if (rc != MPROC_OK && !(go_on && go_on[0] == '1')) {
    std::fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 2;
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
