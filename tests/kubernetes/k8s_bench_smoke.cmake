# ctest k8s_bench_smoke: runs `fabric-k8s-bench --rounds 3` (BENCH) and
# fails unless it exited 0 and printed a row for every operation, the budget
# line and no claim left. Performance is measured, not tested: no figure is
# checked.
execute_process(COMMAND ${BENCH} --rounds 3 --pings 3
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fabric-k8s-bench exited ${rc}")
endif()
foreach(row IN ITEMS "ping" "raw vf attach" "plugin vf Allocate"
                     "raw memory allocate" "plugin memory Allocate")
  if(NOT out MATCHES "\n${row} +[0-9]+ \\| +[0-9.]+ +[0-9.]+ +[0-9.]+ \\|")
    message(FATAL_ERROR "no row for ${row}")
  endif()
endforeach()
if(NOT out MATCHES "budget met \\(Allocate p99 < 20 ms, VF and memory\\): (yes|no)")
  message(FATAL_ERROR "no budget line")
endif()
if(NOT out MATCHES "claims left: 0\n")
  message(FATAL_ERROR "claims were left")
endif()
