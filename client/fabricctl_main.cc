// fabricctl: the command-line client of fabric-manager. See client/cli.h.
#include <iostream>
#include <string>
#include <vector>

#include "client/cli.h"

int main(int argc, char** argv) {
  return fabric::client::RunFabricctl(std::vector<std::string>(argv, argv + argc),
                                      std::cout, std::cerr);
}
