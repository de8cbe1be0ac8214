// ISA selection: the best instruction set this CPU supports, the one in use (lmoe_cpu_set_isa),
// and the table of kernels of that ISA. A new kernel (e.g. a bf16-activation GEMM on AMX or
// AVX-512-BF16) is one more field here, filled per ISA in isa.cpp from arch/.
#pragma once
#include "arch/arch.h"
#include "latentmoe.h"

namespace lmoe {

struct IsaKernels {
  DotBlockFn dot_block;
  ReadSumFn read_sum;
};

int best_isa();     // lmoe_isa
int current_isa();  // lmoe_isa in use: the best unless set
// Sets the ISA in use; LMOE_ERR_INVALID_ARGUMENT / LMOE_ERR_UNSUPPORTED with a message.
lmoe_status set_isa(int isa);
// The kernels of the ISA in use.
const IsaKernels& isa_kernels();

}  // namespace lmoe
