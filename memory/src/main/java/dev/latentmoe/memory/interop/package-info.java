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
 *
 * <h2>Arrow C Data: type</h2>
 * A tensor {@code [d0, d1, ..., dk]} is a fixed-size list array
 * ({@code "+w:<d1*...*dk>"}) of {@code d0} rows whose field metadata carries the canonical
 * {@code arrow.fixed_shape_tensor} extension ({@code ARROW:extension:name} and
 * {@code ARROW:extension:metadata = {"shape":[d1,...,dk]}}, encoded in the C Data binary metadata
 * format), the same field {@link dev.latentmoe.memory.interop.ArrowTensors#field} describes. Its one child {@code "item"} has
 * format {@code "f"} (F32), {@code "i"} (I32), {@code "e"} (F16) or, for BF16, fixed-size binary
 * {@code "w:2"} with {@code ARROW:extension:name = latentmoe.bfloat16}. Export writes no nulls, no
 * validity bitmaps, offset 0. Import also accepts a plain primitive array of one of those formats (a
 * rank-1 tensor) and a fixed-size list without the extension (shape {@code [rows, listSize]}), and
 * slices (offsets on the list and its child); it refuses a null in the rows and values the tensor
 * uses, found from their validity bits whenever {@code null_count} is not 0 (a sliced child counts
 * the nulls of the whole child, also those outside the slice). A non-zero {@code null_count} with
 * the bitmap in device memory is refused: Java cannot read it.
 *
 * <h2>Arrow C Data: lifetimes</h2>
 * Export takes a hold ({@link dev.latentmoe.memory.MemoryArena#retain()}) on the tensor's arena
 * that the consumer's call of the array's {@code release} callback (an FFM upcall stub) drops; see
 * {@link dev.latentmoe.memory.MemoryArena} for what closing an arena with outstanding exports does. Children carry
 * their own release callbacks, so a consumer may move a child out and release it separately. The
 * schema holds no tensor memory. Import takes ownership of both structs: the array is moved into
 * our memory (the caller's struct is marked released) and its release callback runs exactly once,
 * when the returned tensor's {@link dev.latentmoe.memory.interop.ForeignArena} is closed, or at once when the import fails; the
 * schema is read and released before the import returns. Structs are read with bounds: strings up
 * to 4096 bytes, metadata up to 1 MiB, no
 * allocation proportional to a declared size. Malformed input raises {@link dev.latentmoe.memory.interop.InteropException}.
 *
 * <h2>DLPack export</h2>
 * Export ({@code DLPack.export}) returns a pointer to a {@code DLManagedTensorVersioned} we
 * allocate: version 1.1, {@code dl_tensor.data} the
 * tensor's address ({@code kDLCPU}, {@code kDLCUDAHost} for pinned host memory, {@code kDLCUDA} with
 * the device id for a {@code DeviceArena} tensor), shape and compact row-major strides (always
 * given), {@code byte_offset} 0, flag {@code DLPACK_FLAG_BITMASK_READ_ONLY} for memory-mapped (read-only)
 * tensors. It holds the tensor's arena ({@link dev.latentmoe.memory.MemoryArena#retain()}) until the consumer calls
 * {@code deleter} (an FFM upcall stub), which frees the struct and drops the hold.
 *
 * <h2>DLPack import</h2>
 * Import ({@code DLPack.importTensor}) takes ownership: the returned tensor views the
 * producer's memory (no copy), owned by a {@link dev.latentmoe.memory.interop.ForeignArena} whose close calls {@code deleter}
 * exactly once; when the import fails the deleter is called before the exception propagates.
 * Accepted: major version 1; devices kDLCPU, kDLCUDAHost (host) and kDLCUDA;
 * dtypes float32, float16, bfloat16, int32 with one lane; {@code ndim} 0..32 (0 is
 * a scalar, shape {@code [1]}); NULL strides or strides equal to the compact row-major ones (any
 * stride for a dimension of size 1); element-aligned data. {@code DLPACK_FLAG_BITMASK_READ_ONLY} host tensors
 * are wrapped read-only. Anything else raises {@link dev.latentmoe.memory.interop.InteropException}.
 */
package dev.latentmoe.memory.interop;
