// ISA selection: the best instruction set this CPU supports, the one in use (lmoe_cpu_set_isa),
// and the table of kernels of that ISA (arch/).
#pragma once
#include "arch/arch.h"
#include "latentmoe.h"

namespace lmoe {

struct IsaKernels {
  const GemmKernel* exact;  // LMOE_PRECISION_EXACT
  const GemmKernel* bf16;   // LMOE_PRECISION_BF16
  ReadSumFn read_sum;
  int peak_probe;           // lmoe_peak_probe bounding both kernels' multiply-adds
};

int best_isa();     // lmoe_isa
int current_isa();  // lmoe_isa in use: the best unless set
// Whether this CPU (and OS, for AMX) can run an lmoe_isa.
bool isa_supported(int isa);
// Sets the ISA in use; LMOE_ERR_INVALID_ARGUMENT / LMOE_ERR_UNSUPPORTED with a message.
lmoe_status set_isa(int isa);
// The kernels of the ISA in use.
const IsaKernels& isa_kernels();
const IsaKernels& isa_kernels_of(int isa);

}  // namespace lmoe
