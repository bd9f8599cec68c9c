//! `kiln bench`: kiln vs burn's built-in encoder, same process, weights and inputs.

use anyhow::Result;
use clap::Args;
use kiln_bench::{BenchReport, Shape};

use crate::backend_select::{select, BackendChoice};
use crate::usage::usage;
use crate::with_backend;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Backend: auto picks wgpu when a GPU adapter is present, else flex.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// base (d768, 12 heads, FFN 3072, 4 layers, 8x128), small (d256, 4 heads, 2 layers, 8x64),
    /// or custom (set every size below).
    #[arg(long, default_value = "base")]
    pub shape: String,
    #[arg(long, value_parser = crate::limits::count::<1, { crate::limits::MAX_WIDTH }>)]
    pub d_model: Option<usize>,
    #[arg(long, value_parser = crate::limits::count::<1, { crate::limits::MAX_WIDTH }>)]
    pub nhead: Option<usize>,
    #[arg(long, value_parser = crate::limits::count::<1, { crate::limits::MAX_WIDTH }>)]
    pub dim_feedforward: Option<usize>,
    #[arg(long, value_parser = crate::limits::count::<1, { crate::limits::MAX_LAYERS }>)]
    pub layers: Option<usize>,
    #[arg(long, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub batch: Option<usize>,
    #[arg(long, value_parser = crate::limits::count::<1, { crate::limits::MAX_SEQ }>)]
    pub seq: Option<usize>,
    /// Timed runs of each model (alternating); the median is reported.
    #[arg(long, default_value_t = 10, value_parser = crate::limits::count::<1, { crate::limits::MAX_REPEAT }>)]
    pub repeat: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn shape_of(args: &BenchArgs) -> Result<Shape> {
    let mut shape = match args.shape.as_str() {
        "custom" => Shape {
            name: "custom".into(),
            ..Shape::small()
        },
        name => Shape::named(name)
            .ok_or_else(|| usage(format!("unknown --shape {name} (base, small or custom)")))?,
    };
    let overrides = [
        (&mut shape.d_model, args.d_model),
        (&mut shape.nhead, args.nhead),
        (&mut shape.dim_feedforward, args.dim_feedforward),
        (&mut shape.num_layers, args.layers),
        (&mut shape.batch, args.batch),
        (&mut shape.seq, args.seq),
    ];
    let mut changed = false;
    for (field, value) in overrides {
        if let Some(v) = value {
            if v == 0 {
                return Err(usage("sizes must be at least 1"));
            }
            *field = v;
            changed = true;
        }
    }
    if changed && shape.name != "custom" {
        shape.name = format!("{}*", shape.name);
    }
    shape.config().validate()?;
    Ok(shape)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let shape = shape_of(args)?;
    let selection = select(args.backend)?;
    if let Some(reason) = &selection.reason {
        eprintln!(
            "kiln: --backend auto picked {} ({reason})",
            selection.backend.name()
        );
    }
    let name = if cfg!(feature = "blas") && selection.backend.name() == "ndarray" {
        "ndarray+openblas"
    } else {
        selection.backend.name()
    };
    let report = with_backend!(selection.backend, |B, device| kiln_bench::run::<B>(
        name,
        &shape,
        &device,
        args.repeat,
        args.seed
    ))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, &selection.device_name);
    }
    Ok(())
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
}

fn print_table(r: &BenchReport, device: &str) {
    let s = &r.shape;
    println!(
        "kiln bench on {} [{device}]: shape {} (d_model {}, {} heads, FFN {}, {} layers, batch {} x seq {}), median of {}",
        r.backend, s.name, s.d_model, s.nhead, s.dim_feedforward, s.num_layers, s.batch, s.seq, r.repeat
    );
    println!(
        "raw matmul {n}x{n}x{n}: {:.1} GFLOP/s (the roofline)",
        r.matmul_gflops,
        n = r.matmul_n
    );
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "", "tokens/s", "ms", "GFLOP/s", "roofline", "peak RSS"
    );
    let mut rows = vec![("kiln", &r.kiln), ("burn-nn encoder", &r.burn)];
    if let Some(fused) = &r.kiln_fused_op {
        rows.push(("kiln, fused attn op", fused));
    }
    if let Some(unsplit) = &r.kiln_unsplit {
        rows.push(("kiln, batch unsplit", unsplit));
    }
    for (name, m) in rows {
        println!(
            "{:<22} {:>12.0} {:>10.2} {:>10.1} {:>9.0}% {:>12}",
            name,
            m.tokens_per_second,
            m.median_seconds * 1e3,
            m.gflops_per_second,
            m.roofline_fraction * 100.0,
            mib(m.peak_rss_bytes)
        );
    }
    println!(
        "kiln / burn-nn: {:.2}x (outputs agree to {:.1e})",
        r.speedup_vs_burn, r.max_abs_diff_vs_burn
    );
    if let (Some(fused), Some(diff)) = (&r.kiln_fused_op, r.max_abs_diff_fused_op) {
        println!(
            "kiln's matmul attention / burn's fused attention op: {:.2}x (outputs agree to {diff:.1e})",
            r.kiln.tokens_per_second / fused.tokens_per_second
        );
    }
    if let (Some(unsplit), Some(diff)) = (&r.kiln_unsplit, r.max_abs_diff_unsplit) {
        println!(
            "kiln with its batch split across threads / unsplit: {:.2}x (outputs agree to {diff:.1e})",
            r.kiln.tokens_per_second / unsplit.tokens_per_second
        );
    }
    let p = &r.padded;
    println!(
        "padded batch, lengths {:?} ({} real tokens, {:.2}x fewer than padded): padded {:.0} real tok/s, packed {:.0} real tok/s: {:.2}x (agree to {:.1e})",
        p.lengths, p.real_tokens, (s.batch * s.seq) as f64 / p.real_tokens as f64, p.padded_real_tokens_per_second, p.packed_real_tokens_per_second, p.speedup, p.max_abs_diff
    );
}
