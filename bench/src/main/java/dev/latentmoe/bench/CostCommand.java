package dev.latentmoe.bench;

import dev.latentmoe.kernels.MoeConfig;

import java.util.List;
import java.util.Locale;
import java.util.Set;

/** {@code cost --preset P [--dtype bf16|f32|fp8] [--ep E] [--latent L]}: the paper's per-token cost model. */
final class CostCommand {
    private CostCommand() {}

    static void run(String[] argv) {
        Args a = new Args(argv, 1, Set.of());
        String presetName = a.get("preset", "nemotron3-super");
        String dtype = a.get("dtype", "bf16").toLowerCase(Locale.ROOT);
        int bytes = switch (dtype) {
            case "bf16", "f16", "fp16" -> 2;
            case "f32", "fp32" -> 4;
            case "fp8", "f8", "int8" -> 1;
            default -> throw new Args.UsageException("--dtype must be bf16, f16, f32 or fp8, got " + dtype);
        };
        int ep = a.intValue("ep", 1);
        MoeConfig preset = Shapes.byName(presetName);
        int latent = a.intValue("latent", preset.isLatent() ? preset.latentSize() : preset.hiddenSize() / 4);
        a.finish();
        if (ep < 1) throw new Args.UsageException("--ep must be >= 1");
        List<CostModel.Row> rows = CostModel.table(CostModel.standardBase(preset), latent, bytes, ep);
        String title = String.format(Locale.ROOT,
                "per-token cost, Table 1 of arXiv 2601.18089: %s as the standard base (%s), l = %d, alpha = d/l = %d, %s (%d B/element), EP = %d%n"
                        + "all-to-all = dispatch + combine of each routed copy, x (EP-1)/EP leaving the device",
                presetName, Shapes.describe(preset), latent, preset.hiddenSize() / latent, dtype, bytes, ep);
        System.out.print(CostModel.format(rows, title));
        if (preset.isLatent()) {
            CostModel.Row asIs = CostModel.row(presetName + " as built", preset, preset.numExperts(), preset.topK(),
                    preset.latentSize(), preset.latentSize(), bytes, ep);
            System.out.print(CostModel.format(List.of(asIs), "the preset itself (N " + preset.numExperts() + ", K " + preset.topK() + " in l):"));
        }
    }
}
