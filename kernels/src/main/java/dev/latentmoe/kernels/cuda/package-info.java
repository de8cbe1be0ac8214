/**
 * The CUDA backend ({@code Backends.get("cuda")}, {@code liblatentmoe_cuda.so}, H100/H200 sm_90a,
 * device {@code cuda:0}): {@link dev.latentmoe.kernels.cuda.CudaBackend},
 * {@link dev.latentmoe.kernels.cuda.CudaLayerKernels} (one layer's weights on the GPU) and
 * {@link dev.latentmoe.kernels.cuda.CudaGraphedLayer} (the whole forward pass as CUDA graphs).
 *
 * <h2>Backend</h2>
 * Available when the library loads, the driver reports at least one GPU and device 0 passes
 * {@code lmoe_cuda_device_check}; otherwise {@code unavailableReason()} says which of those failed.
 * Work runs on one stream per backend ({@code stream()}, created on first use, lives as long as the
 * JVM); activations live in {@code DeviceArena}s on that stream ({@code newActivationArena}), so
 * uploads, kernels and downloads through them are ordered without extra syncs. Data types: x, out,
 * latentSorted, expertOutSorted bf16; topkIds i32; topkWeights f32. Weights: F32 / BF16 matrices are
 * copied to the GPU as bf16 (F32 host weights rounded on the way; an F32 gate stays F32); FP8 and
 * NVFP4 matrices are copied as they are stored (data, block scales) with their per-tensor scales, and
 * the kernels dequantize them in registers (weight-only, bf16 activations). Each expert matrix kind
 * must have one format. {@code CudaBackend.w8a8()} runs the FP8 matrices that carry a checkpoint
 * input scale W8A8 (activations quantized to e4m3 with it, FP8 tensor-core GEMMs on the sorted path).
 *
 * <h2>Layer kernels</h2>
 * <p><b>Synchronous API.</b> The {@code LayerKernels} methods enqueue their native call(s) on the
 * backend's stream without any host synchronisation in between, then wait for that stream once at
 * the end, so on return the outputs are complete and any asynchronous CUDA error has been raised as
 * a Java exception, the CPU backend's contract. {@code forwardAsync} only enqueues, on a stream of
 * the caller's choice.
 *
 * <p><b>Validation.</b> Shapes, dtypes, devices, open arenas and T &ge; 1 are checked in Java before
 * any native call ({@code LayerChecks}). Values (finite x, expert ids in range, expert offsets, the
 * slot permutation) live in device memory that Java cannot read; the native side validates what it
 * can without a host sync: config and weight pointers ({@code lmoe_cuda_validate}, once, at
 * prepare) and the arguments of each call. Per latentmoe_cuda.h, {@code dispatch} treats expert ids
 * outside [0, N) as expert 0 (memory-safe, no error); a non-finite x propagates to the output;
 * expert offsets / slot permutations not produced by this backend are the caller's responsibility.
 * Tensors produced by this backend's own router and dispatch are always valid.
 *
 * <p><b>Streams and threads.</b> Tensors from {@code newActivationArena} share the backend's stream.
 * A tensor whose {@code DeviceArena} allocates on another stream is made safe by synchronising that
 * stream first (one host wait per such stream and call). Calls may come from several threads;
 * enqueues are serialised per layer, and work on one stream runs in order, so a shared workspace per
 * stream is safe.
 *
 * <h2>Graphed layer</h2>
 * <p><b>Buckets.</b> A graph is fixed to its token count, so T tokens run in the graph of the
 * smallest bucket B &ge; T ({@code defaultBuckets}, or an explicit list). Each bucket is captured on
 * first use (host work of a few milliseconds; {@code captureAll()} does it up front). All buckets
 * share one set of static device buffers sized for the largest bucket, allocated at construction:
 * input x [maxT, d] bf16, output [maxT, d] bf16, routing [maxT, K] (i32 ids, f32 weights) and the
 * forward workspace. Sharing is safe because every replay runs on the object's one stream, in order.
 *
 * <p><b>Padding and exactness.</b> Rows T..B-1 of the static input are zero when a graph of B
 * tokens runs for T tokens: the buffers start zeroed, and a call that follows one with more tokens
 * first zeroes the rows the earlier call left behind (one {@code memset} in stream order, only on
 * such calls). Every token's output depends only on its own row, so padding costs compute but never
 * changes the T rows returned: they equal {@code CudaLayerKernels.forward} of the zero-padded B-row
 * input bit for bit. Whether they also equal the forward of the T rows alone bit for bit depends on
 * whether the kernels' rounding depends on the row count: the sorted path's GEMMs (T &gt; 16) do
 * not, but the small-T kernels do (the decode path splits its k-sum into groups by T, the dense
 * projections switch to tensor cores at T = 16). Hence the default buckets: one per T up to 16,
 * powers of two above. The path a graph runs is the one {@code lmoe_cuda_forward} chose for B tokens
 * at capture ({@code Bucket.path()}): the process-wide decode policy and experts backend are frozen
 * into the graph.
 *
 * <p><b>Two ways to call it.</b> {@code forwardAsync(x, out)} copies the caller's T rows of x into
 * the static input, replays the bucket's graph and copies T rows of the output out (and of the
 * routing with {@code forwardAsync(x, out, routing)}): all enqueued on the graphed layer's stream,
 * no host synchronisation. An engine that can write its activations into the static buffers
 * directly skips both copies: write {@code Bucket.input()} on that stream, call
 * {@code Bucket.replay()}, read {@code Bucket.output()} (rows of the input it does not write keep
 * what was there: zeros or earlier inputs).
 *
 * <p><b>Checks.</b> The layer's own checks, plus 1 &le; T &le; {@code maxTokens()}, open layer
 * kernels and an open graphed layer, before any native call; caller tensors may not overlap the
 * static buffers.
 *
 * <p><b>Cost per call.</b> Once a bucket is captured, {@code forwardAsync} and {@code replay}
 * allocate nothing on the Java heap (no lambdas, boxing, varargs or new segments: every segment is
 * made at construction). {@code forwardAsync} makes 4 native calls (set device, copy in, graph
 * launch, copy out; one memset more after a larger call, two copies more with the routing),
 * {@code replay} 2 (set device, launch).
 *
 * <p><b>Lifetime.</b> Closing waits for the calls in flight on other threads (their enqueues; a
 * {@code CallGuard}, as for the layer kernels), refuses later ones with an
 * {@link java.lang.IllegalStateException}, then frees the graphs, the static buffers (in stream
 * order, after the replays already enqueued; waits for the stream) and the private capture stream.
 * Closing the layer (its {@code CudaLayerKernels}) waits for its own calls in flight, then closes its
 * graphed layers, then frees the weights in stream order. Thread-safe: calls from several threads
 * are serialised per object.
 */
package dev.latentmoe.kernels.cuda;
