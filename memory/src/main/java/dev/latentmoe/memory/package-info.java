/**
 * Where tensors live and who frees them: arenas (host, pinned, device, memory-mapped) that hand out
 * 64-byte-aligned, padded blocks and count their bytes ({@link dev.latentmoe.memory.MemoryAccounting}),
 * and {@link dev.latentmoe.memory.Tensor}, a dense row-major view owned by an arena that checks the
 * arena before every access. CUDA streams and copies are in {@code memory.cuda}, file formats in
 * {@code memory.io}, Arrow and DLPack in {@code memory.interop}.
 */
package dev.latentmoe.memory;
