package dev.latentmoe.kernels;

import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.interop.ArrowTensors;
import dev.latentmoe.memory.interop.ForeignArena;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.Field;

import java.util.List;

/**
 * A JVM engine's path into the layer: a {@link VectorSchemaRoot} whose column holds x as an
 * {@code arrow.fixed_shape_tensor} ({@link FixedSizeListVector} of Float4 values, one row per token,
 * list size d) in, a root with y in the same form out, with no copy either way: the layer reads x
 * straight from the input vector's data buffer and writes y straight into the output vector's
 * buffer (allocated from the caller's {@link BufferAllocator}, so the result owns its memory and
 * outlives nothing of ours). For host backends (the CPU backend).
 */
public final class ArrowLayer {
    private ArrowLayer() {}

    /** As {@link #forward(MoeLayer, VectorSchemaRoot, String, String, BufferAllocator)} with the output column named like the input. */
    public static VectorSchemaRoot forward(MoeLayer layer, VectorSchemaRoot in, String column, BufferAllocator allocator) {
        return forward(layer, in, column, column, allocator);
    }

    /**
     * y = layer(x) for x the {@code column} of {@code in} ([T, d], T rows); returns a new root with
     * the one column {@code outColumn} ([T, d] in the backend's activation dtype) that the caller
     * closes. The input root must stay open during the call only.
     *
     * @throws IllegalArgumentException when the column is missing, not a fixed-size list, holds
     *         nulls, has the wrong dtype or width, or is empty (T = 0), or x is not finite
     */
    public static VectorSchemaRoot forward(MoeLayer layer, VectorSchemaRoot in, String column, String outColumn,
                                           BufferAllocator allocator) {
        if (layer == null || in == null || allocator == null) throw new IllegalArgumentException("layer, root and allocator must not be null");
        FieldVector v = in.getVector(column);
        if (v == null) {
            throw new IllegalArgumentException("no column '" + column + "' in " + in.getSchema().getFields().stream().map(Field::getName).toList());
        }
        if (!(v instanceof FixedSizeListVector list)) {
            throw new IllegalArgumentException("column '" + column + "' is " + v.getField().getType()
                    + "; expected a fixed-size list (arrow.fixed_shape_tensor) of d = " + layer.config().hiddenSize() + " values");
        }
        int d = layer.config().hiddenSize();
        if (list.getListSize() != d) {
            throw new IllegalArgumentException("column '" + column + "' rows hold " + list.getListSize() + " values; the layer's hidden size is " + d);
        }
        int tokens = list.getValueCount();
        if (tokens == 0) throw new IllegalArgumentException("column '" + column + "' is empty (T = 0)");
        try (ForeignArena view = ForeignArena.view("arrow:" + column, Device.CPU)) {
            Tensor x = ArrowTensors.fromVector(list, view).reshape(tokens, d);
            Field field = ArrowTensors.field(outColumn, layer.kernels().activationDType(), tokens, d);
            FixedSizeListVector out = (FixedSizeListVector) field.createVector(allocator);
            try {
                out.setInitialCapacity(tokens);
                out.allocateNew();
                FieldVector values = out.getDataVector();
                long elems = (long) tokens * d;
                values.getValidityBuffer().setOne(0, (elems + 7) / 8);
                out.getValidityBuffer().setOne(0, (tokens + 7) / 8);
                out.setValueCount(tokens);
                Tensor y = ArrowTensors.fromVector(out, view);
                layer.forward(x, y);
                return new VectorSchemaRoot(List.of(out));
            } catch (RuntimeException | Error e) {
                out.close();
                throw e;
            }
        }
    }
}
