package org.autocircuit.kernels;

import static org.autocircuit.kernels.KernelTestSupport.assertClose;
import static org.autocircuit.kernels.KernelTestSupport.assumeNativeKernels;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.autocircuit.kernels.KernelTestSupport.Tolerance;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * NativeKernels checks its arguments in Java before crossing into C++, with messages that name the argument;
 * valid calls it does not support go to TorchKernels; C++ failures arrive as AutoCircuitNativeException. The
 * validation tests need libtorch only, not the native library.
 */
class NativeKernelsValidationTest {
    private static final MaskLayout HEAD = new MaskLayout(false, false, true);

    private PointerScope scope;
    private Tensor input;   // [batch 2, seq 3, dModel 4]
    private Tensor patch;   // [nIn 5, 2, 3, 4]
    private Tensor curr;
    private Tensor mask;    // [head 2, nIn 5]

    @BeforeEach
    void setUp() {
        scope = new PointerScope();
        torch.manual_seed(7);
        input = torch.randn(2, 3, 4);
        patch = torch.randn(5, 2, 3, 4);
        curr = torch.randn(5, 2, 3, 4);
        mask = torch.rand(2, 5);
    }

    @AfterEach
    void tearDown() {
        scope.close();
    }

    private String invalid(Tensor in, Tensor[] masks, Tensor p, Tensor c, MaskLayout layout) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> NativeKernels.validate(in, masks, p, c, layout));
        return e.getMessage();
    }

    @Test
    void validCallIsSupported() {
        assertNull(NativeKernels.validate(input, new Tensor[] {mask, mask}, patch, curr, HEAD));
        Tensor strided = torch.rand(5, 2).t();  // masks may be strided
        assertNull(NativeKernels.validate(input, new Tensor[] {strided}, patch, curr, HEAD));
    }

    @Test
    void wrongDtypes() {
        assertEquals("edgePatch: patch must have dtype Float like input, got Double",
                invalid(input, new Tensor[] {mask}, patch.to(torch.ScalarType.Double), curr, HEAD));
        assertEquals("edgePatch: curr must have dtype Float like input, got BFloat16",
                invalid(input, new Tensor[] {mask}, patch, curr.to(torch.ScalarType.BFloat16), HEAD));
        assertTrue(invalid(input.to(torch.ScalarType.Long), new Tensor[] {mask}, patch.to(torch.ScalarType.Long),
                curr.to(torch.ScalarType.Long), HEAD).startsWith("edgePatch: input must be a floating-point tensor"));
        assertEquals("edgePatch: masks[1] must be a floating-point tensor, got Int",
                invalid(input, new Tensor[] {mask, mask.to(torch.ScalarType.Int)}, patch, curr, HEAD));
    }

    @Test
    void wrongDevice() {
        Tensor meta = curr.to(new Device("meta"), torch.ScalarType.Float);
        assertEquals("edgePatch: curr must be on cpu like input, got meta",
                invalid(input, new Tensor[] {mask}, patch, meta, HEAD));
        assertEquals("edgePatch: masks[0] must be on cpu like input, got meta",
                invalid(input, new Tensor[] {mask.to(new Device("meta"), torch.ScalarType.Float)}, patch, curr, HEAD));
    }

    @Test
    void wrongShapes() {
        assertEquals("edgePatch: input must be [batch, seq, dModel], got shape [6, 4]",
                invalid(input.reshape(6, 4), new Tensor[] {mask}, patch, curr, HEAD));
        assertEquals("edgePatch: patch must be [nIn, 2, 3, 4] to match input, got shape [5, 3, 2, 4]",
                invalid(input, new Tensor[] {mask}, patch.reshape(5, 3, 2, 4), curr, HEAD));
        assertEquals("edgePatch: curr must have the shape of patch [5, 2, 3, 4], got [4, 2, 3, 4]",
                invalid(input, new Tensor[] {mask}, patch, curr.narrow(0, 0, 4), HEAD));
        assertEquals("edgePatch: masks[0] must be [heads][5] for MaskLayout[batch=false, seq=false, head=true], "
                        + "got shape [2, 4]",
                invalid(input, new Tensor[] {mask.narrow(1, 0, 4)}, patch, curr, HEAD));
        assertEquals("edgePatch: masks[0] must be [2][3][heads][5] for MaskLayout[batch=true, seq=true, head=true], "
                        + "got shape [2, 5]",
                invalid(input, new Tensor[] {mask}, patch, curr, new MaskLayout(true, true, true)));
        assertEquals("edgePatch: masks[0] must be [2][5] for MaskLayout[batch=true, seq=false, head=false], "
                        + "got shape [3, 5]",
                invalid(input, new Tensor[] {torch.rand(3, 5)}, patch, curr, new MaskLayout(true, false, false)));
        assertEquals("edgePatch: masks must hold at least one mask", invalid(input, new Tensor[0], patch, curr, HEAD));
        assertEquals("edgePatch: masks[1] must not be null", invalid(input, new Tensor[] {mask, null}, patch, curr, HEAD));
        assertEquals("edgePatch: patch must not be null", invalid(input, new Tensor[] {mask}, null, curr, HEAD));
    }

    @Test
    void nonContiguous() {
        Tensor square = torch.randn(5, 3, 3, 4);  // batch == seq, so a transpose keeps the shape
        Tensor in = torch.randn(3, 3, 4);
        assertEquals("edgePatch: patch must be contiguous (call .contiguous())",
                invalid(in, new Tensor[] {mask}, square.transpose(1, 2), square, HEAD));
        assertEquals("edgePatch: curr must be contiguous (call .contiguous())",
                invalid(in, new Tensor[] {mask}, square, square.transpose(1, 2), HEAD));
        assertEquals("edgePatch: input must be contiguous (call .contiguous())",
                invalid(in.transpose(0, 1), new Tensor[] {mask}, square, square, HEAD));
    }

    @Test
    void unsupportedDtypesAreReportedNotRejected() {
        Tensor[] masks = {mask.to(torch.ScalarType.Double)};
        assertEquals("dtype Double", NativeKernels.validate(input.to(torch.ScalarType.Double), masks,
                patch.to(torch.ScalarType.Double), curr.to(torch.ScalarType.Double), HEAD));
        assertEquals("dtype Half", NativeKernels.validate(input.to(torch.ScalarType.Half), masks,
                patch.to(torch.ScalarType.Half), curr.to(torch.ScalarType.Half), HEAD));
    }

    @Test
    void unsupportedDtypesGoToTheReference() {
        assumeNativeKernels();
        Tensor[] masks = {mask.to(torch.ScalarType.Double)};
        Tensor in = input.to(torch.ScalarType.Double);
        Tensor p = patch.to(torch.ScalarType.Double);
        Tensor c = curr.to(torch.ScalarType.Double);
        Tensor expected = TorchKernels.INSTANCE.edgePatch(in, masks, p, c, HEAD)[0];
        Tensor actual = NativeKernels.instance().edgePatch(in, masks, p, c, HEAD)[0];
        assertEquals(torch.ScalarType.Double, actual.scalar_type().intern());
        assertClose("float64 via the reference", expected, actual, new Tolerance(0, 0));
    }

    @Test
    void invalidCallsThrowBeforeCrossing() {
        assumeNativeKernels();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.instance()
                .edgePatch(input, new Tensor[] {mask}, patch.to(torch.ScalarType.Double), curr, HEAD));
        assertTrue(e.getMessage().contains("patch must have dtype Float"), e.getMessage());
    }

    /** A dtype the CPU kernels lack, handed to C++ directly: the error names the op, the argument and the device. */
    @Test
    void cxxDtypeErrorNamesTheDevice() {
        assumeNativeKernels();
        AutoCircuitNativeException e = assertThrows(AutoCircuitNativeException.class, () -> NativeKernels.callNative(
                input.to(torch.ScalarType.Half), new Tensor[] {mask}, patch.to(torch.ScalarType.Half),
                curr.to(torch.ScalarType.Half), HEAD));
        assertTrue(e.getMessage().contains("edge_patch: input must be float32 or bfloat16 on cpu, got Half"), e.getMessage());
    }

    /** A failure inside C++ (here: arguments Java would have refused) arrives wrapped once, naming the op. */
    @Test
    void nativeFailuresArriveAsAutoCircuitNativeException() {
        assumeNativeKernels();
        AutoCircuitNativeException e = assertThrows(AutoCircuitNativeException.class, () -> NativeKernels.callNative(
                input, new Tensor[] {mask}, patch.reshape(5, 3, 2, 4), curr, HEAD));
        assertEquals("edge_patch", e.op());
        assertTrue(e.getMessage().startsWith("native edge_patch failed: "), e.getMessage());
        assertTrue(e.getMessage().contains("edge_patch: curr must have the shape of patch"), e.getMessage());
        assertTrue(e.getCause() instanceof RuntimeException);
    }
}
