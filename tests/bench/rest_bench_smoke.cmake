# ctest rest_bench_smoke: runs `fabric-rest-bench --smoke` (BENCH) and
# fails unless it exited 0 and printed a row for each operation at each
# level of its default --clients (1, 8, 32), the goal line, and the
# metrics-cost line. Performance
# is measured, not tested: no figure is checked.
execute_process(COMMAND ${BENCH} --smoke
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fabric-rest-bench --smoke exited ${rc}")
endif()
foreach(op IN ITEMS ping alloc)
  foreach(clients IN ITEMS 1 8 32)
    if(NOT out MATCHES "\n${op} +${clients} \\| [^\n]+\\| [^\n]+\\| +[0-9.]+\n")
      message(FATAL_ERROR "no row for ${op} at ${clients} clients")
    endif()
  endforeach()
endforeach()
if(NOT out MATCHES "goal met \\(REST p50 <= 1.5x gRPC p50 on every row\\): (yes|no)")
  message(FATAL_ERROR "no goal line")
endif()
# The metrics-cost line: /metrics was read (and answered) at least once.
if(NOT out MATCHES "metrics cost: [^\n]+ \\([1-9][0-9]* reads\\)")
  message(FATAL_ERROR "no metrics-cost line with a successful /metrics read")
endif()
