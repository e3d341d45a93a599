// Every test binary starts here.  mproc_main() comes first: in a child
// started by spawn it runs the requested entry and exits, so GoogleTest
// never starts in children (the __main__ guard, made explicit).
#include <gtest/gtest.h>

#include <cstdio>

#include "test_util.h"

int main(int argc, char **argv) {
  static std::vector<mproc_entry> table;
  table = test_entries();
  table.push_back(mproc_entry MPROC_ENTRY_END);
  int rc = mproc_main(argc, argv, table.data());
  if (rc != MPROC_OK) {
    std::fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 2;
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
