/**
 * Zero-copy interchange of {@link dev.latentmoe.memory.Tensor}s with other runtimes through the
 * Arrow C Data / C Device Data Interfaces and DLPack 1.x, written from the specifications as FFM
 * struct layouts with FFM upcall stubs as release callbacks and deleters (no JNI), and with Arrow
 * Java vectors. Split the way Arrow Java splits its C Data module:
 * <ul>
 *   <li>{@link dev.latentmoe.memory.interop.ArrowCData}: the C structs (layouts, constants) and the
 *       entry points; {@code CDataExporter} and {@code CDataImporter} behind them;</li>
 *   <li>{@code CDataFormat}: format strings, binary metadata, what a schema says the tensor is;
 *       {@link dev.latentmoe.memory.interop.FixedShapeTensor}: the tensor extension type, shared
 *       with {@link dev.latentmoe.memory.interop.ArrowTensors} (Arrow Java vectors);</li>
 *   <li>{@link dev.latentmoe.memory.interop.DLPack}: DLPack export and import;</li>
 *   <li>{@code Native}: the registry of live exports, upcall stubs and bounded foreign reads;
 *       {@link dev.latentmoe.memory.interop.ForeignArena}: the owner of imported memory.</li>
 * </ul>
 *
 * <p>Exports hold the tensor's arena ({@link dev.latentmoe.memory.MemoryArena#retain()}) until
 * the consumer releases them: closing a shared arena with outstanding exports defers the free to
 * the last release; closing a confined one refuses with {@link java.lang.IllegalStateException}.
 * Imports become tensors owned by a {@link dev.latentmoe.memory.interop.ForeignArena} whose close
 * runs the producer's release exactly once. Malformed foreign structures raise
 * {@link dev.latentmoe.memory.interop.InteropException} (an {@link java.lang.IllegalArgumentException}).
 */
package dev.latentmoe.memory.interop;
