//! Liquid's `capture` block, as liquid writes it but charged to the render's
//! [`budget`](super::budget), and `include`/`render` refused: Tidings has no partials,
//! and liquid's `render ... for (1..n)` would build its range before failing.

use std::io::Write;

use liquid_core::error::ResultLiquidExt;
use liquid_core::model::{KString, Scalar, Value};
use liquid_core::{
    BlockReflection, Error, Language, ParseBlock, ParseTag, Renderable, Result, Runtime, TagBlock,
    TagReflection, TagTokenIter, Template,
};

use super::budget::{MAX_ADDED_BYTES, charge_growth, check_time, weight};

/// `{% capture name %}…{% endcapture %}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptureBlock;

/// `{% include … %}` and `{% render … %}`: parsed, and failing when rendered.
#[derive(Clone, Copy, Debug)]
pub struct PartialTag(pub &'static str);

impl BlockReflection for CaptureBlock {
    fn start_tag(&self) -> &str {
        "capture"
    }
    fn end_tag(&self) -> &str {
        "endcapture"
    }
    fn description(&self) -> &str {
        "renders into a variable, within the render's byte budget"
    }
}

impl TagReflection for PartialTag {
    fn tag(&self) -> &str {
        self.0
    }
    fn description(&self) -> &str {
        "partials are not supported"
    }
}

impl ParseBlock for CaptureBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let id: KString = arguments
            .expect_next("Identifier expected")?
            .expect_identifier()
            .into_result()?
            .to_owned()
            .into();
        arguments.expect_nothing()?;
        let template = Template::new(
            tokens
                .parse_all(options)
                .trace_with(|| format!("{{% capture {id} %}}").into())?,
        );
        tokens.assert_empty();
        Ok(Box::new(Capture { id, template }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Capture {
    id: KString,
    template: Template,
}

/// A capture's buffer: refuses to grow past the bytes the render may still add.
struct CaptureBuffer {
    out: Vec<u8>,
    limit: usize,
}

impl Write for CaptureBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("capture over the render budget"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Renderable for Capture {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let trace = || format!("{{% capture {} %}}", self.id);
        check_time(runtime).trace_with(|| trace().into())?;
        let before = runtime
            .try_get(&[Scalar::new(self.id.clone())])
            .map_or(0, |v| weight(v.as_view(), u64::MAX));
        let mut buffer = CaptureBuffer {
            out: Vec::new(),
            limit: MAX_ADDED_BYTES as usize + before as usize,
        };
        let rendered = self.template.render_to(&mut buffer, runtime);
        let after = 8 + buffer.out.len() as u64;
        // Charged before a render error is returned, so a capture stopped by its
        // buffer reports the byte budget.
        charge_growth(runtime, before, after).trace_with(|| trace().into())?;
        rendered.trace_with(|| trace().into())?;
        let output = String::from_utf8_lossy(&buffer.out).into_owned();
        runtime.set_global(self.id.clone(), Value::scalar(output));
        Ok(())
    }
}

impl ParseTag for PartialTag {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        _options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        arguments.for_each(drop);
        Ok(Box::new(NoPartial(self.0)))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

#[derive(Debug)]
struct NoPartial(&'static str);

impl Renderable for NoPartial {
    fn render_to(&self, _writer: &mut dyn Write, _runtime: &dyn Runtime) -> Result<()> {
        Error::with_msg(format!(
            "`{{% {} %}}`: partials are not supported; the template must hold its whole text",
            self.0
        ))
        .into_err()
    }
}
