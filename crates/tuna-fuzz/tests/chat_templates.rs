//! Mutated chat templates (code from a model's files), compiled and rendered as `tuna generate
//! --chat` does: each must render or fail with an error within its budget of instructions and
//! output, never spin or fill the memory.

mod common;

use common::outcome;
use tuna_fuzz::{Campaign, Mutator, Style};
use tuna_lm::{ChatTemplate, Message};

/// ChatML, as SmolLM2 and Qwen2 use it.
const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != \
    'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}\
    {{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}\
    {% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A Llama-2-style template: a system block folded into the first turn, role checks, raise.
const INST: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = \
    messages[1:] %}{% set system = messages[0]['content'] %}{% else %}{% set loop_messages = \
    messages %}{% set system = false %}{% endif %}{% for message in loop_messages %}{% if \
    (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must \
    alternate') }}{% endif %}{% if loop.index0 == 0 and system != false %}{% set content = \
    '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = \
    message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + \
    content.strip() + ' [/INST]' }}{% else %}{{ ' ' + content.strip() + ' ' + eos_token }}\
    {% endif %}{% endfor %}";

/// A template with a namespace and filters, as newer models write them.
const NAMESPACED: &str = "{%- set ns = namespace(count=0, last='') -%}{%- for m in messages -%}\
    {%- set ns.count = ns.count + 1 -%}{%- set ns.last = m.role -%}<|{{ m.role|upper }}|>\
    {{ m.content|trim }}{{ eos_token if m.role == 'assistant' }}\n{%- endfor -%}\
    {%- if add_generation_prompt and ns.last != 'assistant' -%}<|ASSISTANT|>{%- endif -%}\
    {{ '' if ns.count > 0 else raise_exception('no messages') }}{{ messages|length }}";

/// Template syntax, and constructs that cost instructions, output or memory without bound.
const JINJA_TOKENS: &[&str] = &[
    "{%",
    "%}",
    "{{",
    "}}",
    "{#",
    "#}",
    "(",
    ")",
    "[",
    "]",
    "'",
    "\"",
    "|",
    "~",
    "+",
    "*",
    "{% endfor %}",
    "{% endif %}",
    "{% else %}",
    "{% for i in range(100000) %}",
    "{% for j in range(100000) %}x",
    "{{ messages }}",
    "{{ messages|tojson }}",
    "loop.index",
    "{{ 'ab' * 100000000 }}",
    "{{ range(100000000)|list|length }}",
    "{% set x = x ~ x %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% include 'chat' %}",
    "{% extends 'chat' %}",
    "{{ raise_exception('bad') }}",
    "{% set ns = namespace(a='x') %}",
    "{% set ns.a = ns.a ~ ns.a ~ ns.a %}",
    "{{ messages[999] }}",
    "{{ x.y.z }}",
    "|join('x')",
    "|replace('', 'aaaa')",
    "{{ 10 ** 100 }}",
    "{{ 1 / 0 }}",
    "{{ (messages * 100000)|length }}",
    "{% filter upper %}",
    "{% endfilter %}",
    "{% raw %}",
    "\u{0}",
    "\u{10ffff}",
];

#[test]
fn mutated_chat_templates_render_or_fail_within_budget() {
    let seeds: Vec<Vec<u8>> = [CHATML, INST, NAMESPACED]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
    let messages = vec![
        Message::new("system", "Answer briefly."),
        Message::new("user", "What is the capital of France?"),
        Message::new("assistant", "Paris."),
        Message::new("user", "And of Italy?"),
    ];
    let mutator = Mutator::new(Style::Text, JINJA_TOKENS);
    let report = Campaign::new("chat_template", 10000).run(&seeds, &mutator, move |bytes| {
        let source = String::from_utf8_lossy(bytes).into_owned();
        outcome(
            ChatTemplate::new(source, "<s>".into(), "</s>".into())
                .and_then(|t| t.render(&messages, true)),
        )
    });
    report.assert_clean("chat_template");
}
