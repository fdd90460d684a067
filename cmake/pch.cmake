# Precompiled headers, shared by the whole tree (FABRIC_PCH; default ON for
# clang, OFF for g++).
#
# Why: CI (./deploy/dev.sh test) compiles the tree three times on 2 cores,
# and most of each TU's time goes to the same heavy system headers (gRPC,
# protobuf, Abseil, GoogleTest/gMock, the standard library). They are
# compiled once per build into one of two PCHs, which every other target
# reuses (target_precompile_headers(REUSE_FROM)):
#   fabric_pch       system headers, for targets that do not see GoogleTest;
#   fabric_test_pch  the same plus gtest/gmock, for targets that link
#                    GTest:: directly or through a PUBLIC/INTERFACE dep (they
#                    are compiled with -DGTEST_HAS_PTHREAD=1, which the PCH
#                    must match).
# fabric_use_pch(), called once at the end of the root CMakeLists.txt,
# assigns one of them to every compiled target; nothing else in the tree
# needs to know about it.
#
# What it requires: a reusing target must be compiled with the flags and
# definitions the PCH was built with. The flags come from the root's
# add_compile_options, shared by every target. A target may add definitions
# of its own (FABRIC_SOURCE_DIR, CPPHTTPLIB_*, ...) as long as no header in
# the PCH looks at them: clang accepts extra -D macros, but rejects a PCH
# built with a -D the target lacks (a hard error); g++ silently ignores a
# PCH that does not match, and CMake passes -Winvalid-pch so that g++ says
# so. Hence: keep only stable system headers in the lists below, never a
# header whose meaning depends on a target's definitions (httplib.h is
# configured by CPPHTTPLIB_* per target: it stays out), and never a header
# of this project. Generated sources (protobuf, embedded files) and targets
# built with -w are left out: they are compiled once and few.
#
# Side effect: every TU sees these headers, so a missing #include of one of
# them goes unnoticed; a build with -DFABRIC_PCH=OFF shows it. That is why
# the default is ON only for clang: CI's sanitizer and fuzz builds are clang
# builds, where the PCH cut the ASan build from 1226 s to 824 s (2 cores),
# while the g++ Release build gained about 10% at best and, without a PCH,
# keeps checking that every file includes what it uses.

if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  set(_fabric_pch_default ON)
else()
  set(_fabric_pch_default OFF)
endif()
option(FABRIC_PCH "Precompiled headers for the system headers (faster CI)"
       ${_fabric_pch_default})

set(FABRIC_PCH_HEADERS
    <algorithm> <atomic> <chrono> <cstdint> <cstdio> <cstdlib> <cstring>
    <filesystem> <fstream> <functional> <map> <memory> <optional> <set>
    <sstream> <string> <thread> <utility> <vector>
    <absl/base/thread_annotations.h>
    <absl/status/status.h> <absl/status/statusor.h>
    <absl/strings/match.h> <absl/strings/numbers.h> <absl/strings/str_cat.h>
    <absl/strings/str_format.h> <absl/strings/str_join.h>
    <absl/strings/str_split.h> <absl/strings/string_view.h>
    <absl/strings/strip.h>
    <absl/synchronization/mutex.h>
    <absl/time/clock.h> <absl/time/time.h>
    <google/protobuf/descriptor.h> <google/protobuf/message.h>
    <grpcpp/grpcpp.h>)
set(FABRIC_TEST_PCH_HEADERS ${FABRIC_PCH_HEADERS}
    <gtest/gtest.h> <gmock/gmock.h>)

# Defines the two PCH targets; call after the global add_compile_options.
function(fabric_define_pch)
  if(NOT FABRIC_PCH)
    return()
  endif()
  set(stub ${CMAKE_BINARY_DIR}/fabric_pch_stub.cc)
  if(NOT EXISTS ${stub})
    file(WRITE ${stub} "// The source of the PCH targets (cmake/pch.cmake).\n")
  endif()
  set(deps absl::base absl::status absl::statusor absl::strings
           absl::str_format absl::synchronization absl::time
           protobuf::libprotobuf gRPC::grpc++)
  add_library(fabric_pch STATIC ${stub})
  target_link_libraries(fabric_pch PRIVATE ${deps})
  target_precompile_headers(fabric_pch PRIVATE ${FABRIC_PCH_HEADERS})
  add_library(fabric_test_pch STATIC ${stub})
  target_link_libraries(fabric_test_pch PRIVATE ${deps} GTest::gmock)
  target_precompile_headers(fabric_test_pch PRIVATE ${FABRIC_TEST_PCH_HEADERS})
endfunction()

# Whether TARGET sees GoogleTest's compile definitions: a GTest:: target in
# its link closure, through LINK_LIBRARIES and then INTERFACE_LINK_LIBRARIES
# ($<LINK_ONLY:...> entries carry no definitions).
function(_fabric_pch_sees_gtest target out)
  set(todo ${target})
  set(seen "")
  set(first TRUE)
  set(result FALSE)
  while(todo)
    list(POP_FRONT todo t)
    if(t IN_LIST seen OR NOT TARGET ${t})
      continue()
    endif()
    list(APPEND seen ${t})
    if(t MATCHES "^GTest::")
      set(result TRUE)
      break()
    endif()
    if(first)
      get_target_property(libs ${t} LINK_LIBRARIES)
      set(first FALSE)
    else()
      get_target_property(libs ${t} INTERFACE_LINK_LIBRARIES)
    endif()
    foreach(lib IN LISTS libs)
      if(lib AND NOT lib MATCHES "^\\$<LINK_ONLY:")
        list(APPEND todo ${lib})
      endif()
    endforeach()
  endwhile()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(_fabric_pch_targets dir out)
  get_directory_property(targets DIRECTORY ${dir} BUILDSYSTEM_TARGETS)
  get_directory_property(subdirs DIRECTORY ${dir} SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _fabric_pch_targets(${sub} sub_targets)
    list(APPEND targets ${sub_targets})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# Gives every compiled C++ target of the tree one of the two PCHs.
function(fabric_use_pch)
  if(NOT FABRIC_PCH)
    return()
  endif()
  _fabric_pch_targets(${CMAKE_SOURCE_DIR} targets)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(NOT type MATCHES "^(EXECUTABLE|STATIC_LIBRARY|SHARED_LIBRARY|OBJECT_LIBRARY)$"
       OR t STREQUAL "fabric_pch" OR t STREQUAL "fabric_test_pch")
      continue()
    endif()
    get_target_property(options ${t} COMPILE_OPTIONS)
    if("-w" IN_LIST options)
      continue()
    endif()
    get_target_property(srcs ${t} SOURCES)
    set(generated FALSE)
    set(cxx FALSE)
    foreach(src IN LISTS srcs)
      get_source_file_property(gen ${src} TARGET_DIRECTORY ${t} GENERATED)
      if(gen)
        set(generated TRUE)
      endif()
      if(src MATCHES "\\.(cc|cpp|cxx)$")
        set(cxx TRUE)
      endif()
    endforeach()
    if(generated OR NOT cxx)
      continue()
    endif()
    # The PCHs are compiled with -pthread (a usage requirement of gRPC and
    # Abseil), which defines _REENTRANT; g++ ignores and clang rejects a PCH
    # for a TU without it, so every target gets it (CMake drops duplicates).
    target_compile_options(${t} PRIVATE -pthread)
    _fabric_pch_sees_gtest(${t} test)
    if(test)
      target_precompile_headers(${t} REUSE_FROM fabric_test_pch)
    else()
      target_precompile_headers(${t} REUSE_FROM fabric_pch)
    endif()
  endforeach()
endfunction()
