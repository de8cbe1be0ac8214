package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.Tensor;

/**
 * The kernels of one forward pass, bound to one layer's weights on one backend. Each step is
 * callable on its own (tests, engines that interleave their own work) and {@link #forward} runs
 * them all in one native call. Shapes (w = expert width, S = T·K):
 * <pre>
 * routerTopK: x [T,d] f32 → topkIds [T,K] i32, topkWeights [T,K] f32
 * dispatch:   x, topkIds → expertOffsets [N+1] i32, sortedRowOfSlot [S] i32, latentSorted [S,w] f32
 * experts:    expertOffsets, latentSorted → expertOutSorted [S,w] f32
 * combine:    x, topkWeights, sortedRowOfSlot, expertOutSorted → out [T,d] f32
 * </pre>
 * The f32 above is the CPU backend's {@link #activationDType()} / {@link #sortedDType()}; the CUDA
 * backend uses bf16 for x, out, latentSorted and expertOutSorted, and wants every tensor on its
 * device. All arguments are validated in Java before any native call (values only where they are
 * readable from Java, i.e. on the host). Implementations are safe to call from several threads at once.
 * {@link #close()} waits for the calls in flight on other threads, then frees; calls that start
 * after it began throw {@link IllegalStateException}.
 */
public interface LayerKernels extends AutoCloseable {
    MoeConfig config();

    /**
     * Host bytes of the scratch workspaces this layer holds now (for callers in flight and idle
     * ones kept for reuse); -1 when the backend does not track them. A forward's workspace is
     * bounded by its token chunk, whatever T is.
     */
    default long workspaceBytes() { return -1; }

    /** The most {@link #workspaceBytes()} has been since the layer was created; -1 when not tracked. */
    default long workspacePeakBytes() { return -1; }

    /** The dtype of x and out. */
    default DType activationDType() { return DType.F32; }

    /** The dtype of latentSorted and expertOutSorted. */
    default DType sortedDType() { return DType.F32; }

    /** Where every tensor argument must live. */
    default Device device() { return Device.CPU; }

    void routerTopK(Tensor x, Tensor topkIds, Tensor topkWeights);

    void dispatch(Tensor x, Tensor topkIds, Tensor expertOffsets, Tensor sortedRowOfSlot, Tensor latentSorted);

    void experts(Tensor expertOffsets, Tensor latentSorted, Tensor expertOutSorted);

    void combine(Tensor x, Tensor topkWeights, Tensor sortedRowOfSlot, Tensor expertOutSorted, Tensor out);

    /** The whole layer; topkIds and topkWeights may both be null when the routing is not wanted. */
    void forward(Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out);

    @Override
    void close();
}
