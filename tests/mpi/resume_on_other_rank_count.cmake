# A data-parallel run saved on one number of ranks resumes on another and ends
# with the same weights, bit for bit, as an uninterrupted run:
#   A: 2 ranks x 96, granule 32, 2 epochs
#   B: 2 ranks x 96, 1 epoch, saved; then 3 ranks x 64 (same global batch 192, same granule) from B's file
# Both print "weights fnv1a <hash>" (rank 0); the hashes must match.
#   cmake -DMPIEXEC=... -DPROGRAM=... -DWORK_DIR=... -DDATA=... -P resume_on_other_rank_count.cmake
set(common --dataset "${DATA}" --maxlen 20 --hidden_units 16 --granule 32 --eval sampled --threads 1)
file(MAKE_DIRECTORY "${WORK_DIR}")
function(run_job out np)
    execute_process(COMMAND "${MPIEXEC}" -np ${np} --oversubscribe "${PROGRAM}" ${common} ${ARGN}
                    OUTPUT_VARIABLE o ERROR_VARIABLE e RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "mpirun -np ${np} ${PROGRAM} ${ARGN} failed (${rc}):\n${o}\n${e}")
    endif()
    string(REGEX MATCH "step ([0-9]+), weights fnv1a ([0-9a-f]+)" m "${o}")
    if(NOT m)
        message(FATAL_ERROR "no weights hash in the output of ${ARGN}:\n${o}")
    endif()
    set(${out} "${m}" PARENT_SCOPE)
endfunction()
run_job(whole 2 --batch_size 96 --num_epochs 2)
run_job(first 2 --batch_size 96 --num_epochs 1 --save "${WORK_DIR}/epoch1.safetensors")
run_job(resumed 3 --batch_size 64 --num_epochs 2 --load "${WORK_DIR}/epoch1.safetensors")
message(STATUS "uninterrupted on 2 ranks: ${whole}")
message(STATUS "1 epoch on 2 ranks:       ${first}")
message(STATUS "resumed on 3 ranks:       ${resumed}")
if(NOT whole STREQUAL resumed)
    message(FATAL_ERROR "resumed on 3 ranks (${resumed}) differs from the uninterrupted 2-rank run (${whole})")
endif()
if(whole STREQUAL first)
    message(FATAL_ERROR "the second epoch changed nothing: the comparison would prove nothing")
endif()
