// The CPU library's settings from the environment. knobs.cpp is the only unit of
// liblatentmoe.so that reads the environment; it does so once, on first use.
#pragma once

namespace lmoe {

struct CpuKnobs {
  // LMOE_PHASE_TIMES=1 (diagnostics, default off): lmoe_cpu_forward prints one line per call to
  // stderr with each phase's wall time and weight-streaming rate (phase_timer.h).
  bool phase_times = false;
};

const CpuKnobs& knobs();

}  // namespace lmoe
