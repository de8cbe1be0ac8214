/**
 * Zero-copy interchange of {@link dev.latentmoe.memory.Tensor}s with other runtimes through the
 * Arrow C Data / C Device Data Interfaces ({@link dev.latentmoe.memory.interop.ArrowCData}) and
 * DLPack 1.x ({@link dev.latentmoe.memory.interop.DLPack}), written from the specifications as FFM
 * struct layouts with FFM upcall stubs as release callbacks and deleters (no JNI).
 *
 * <p>Exports hold the tensor's arena ({@link dev.latentmoe.memory.MemoryArena#retain()}) until
 * the consumer releases them: closing a shared arena with outstanding exports defers the free to
 * the last release; closing a confined one refuses with {@link java.lang.IllegalStateException}.
 * Imports become tensors owned by a {@link dev.latentmoe.memory.interop.ForeignArena} whose close
 * runs the producer's release exactly once. Malformed foreign structures raise
 * {@link dev.latentmoe.memory.interop.InteropException} (an {@link java.lang.IllegalArgumentException}).
 */
package dev.latentmoe.memory.interop;
