//! What a new tenant starts with, in its locale: the default pipeline, the
//! behaviour signals of SPEC §1, the demand-radar fields and a usable scoring
//! model. Keys and numbers come from the `scoring` crate's default catalog,
//! so the default model always validates against what the tenant has; this
//! module adds only the words people read.

use entity::enums::{Direction, FieldType, StageKind};

/// A stage of the default pipeline.
pub struct StageDefault {
    /// Stable key.
    pub key: &'static str,
    /// The name in the tenant's locale.
    pub name: &'static str,
    /// OPEN, WON or LOST.
    pub kind: StageKind,
    /// Probability of winning from this stage, 0 to 1.
    pub win_probability: f64,
    /// Days idle before the lead is flagged stale.
    pub rotting_days: Option<i32>,
    /// A stage won leads go on to as customers.
    pub post_sale: bool,
}

/// Whether the locale is Simplified Chinese.
fn is_zh(locale: &str) -> bool {
    locale == "zh-CN"
}

/// The default pipeline's name.
pub fn pipeline_name(locale: &str) -> &'static str {
    if is_zh(locale) {
        "销售流程"
    } else {
        "Sales pipeline"
    }
}

/// The default scoring model's name.
pub fn model_name(locale: &str) -> &'static str {
    if is_zh(locale) {
        "默认评分模型"
    } else {
        "Default scoring model"
    }
}

/// A stage row of a pipeline template: key, English name, Chinese name,
/// kind, win probability (0 to 1) and rotting days.
type StageRow = (
    &'static str,
    &'static str,
    &'static str,
    StageKind,
    f64,
    Option<i32>,
);

const WON: StageRow = ("won", "Won", "签约/成交", StageKind::Won, 1.0, None);
const LOST: StageRow = ("lost", "Lost", "已流失", StageKind::Lost, 0.0, None);

/// The default pipeline of SPEC §1; also the `general` template.
const GENERAL: &[StageRow] = &[
    ("lead", "Lead", "线索阶段", StageKind::Open, 0.05, Some(14)),
    (
        "initial_contact",
        "Initial contact",
        "初步接触",
        StageKind::Open,
        0.10,
        Some(10),
    ),
    (
        "needs_discovery",
        "Needs discovery",
        "需求了解",
        StageKind::Open,
        0.20,
        Some(14),
    ),
    (
        "proposal",
        "Proposal / quote",
        "方案报价",
        StageKind::Open,
        0.40,
        Some(10),
    ),
    (
        "intent_confirmed",
        "Intent confirmed",
        "意向确认",
        StageKind::Open,
        0.70,
        Some(7),
    ),
    WON,
    // An existing customer: open, so churn warnings and follow-ups apply;
    // a post-sale stage, where won leads carry on keeping their outcome.
    (
        "post_sale",
        "Post-sale maintenance",
        "后续维护",
        StageKind::Open,
        1.0,
        Some(30),
    ),
    LOST,
];

/// Software sold through a demo and a trial; deals move fast, so stages
/// rot in days.
const SAAS: &[StageRow] = &[
    ("lead", "Lead", "线索阶段", StageKind::Open, 0.05, Some(7)),
    (
        "qualified",
        "Qualified",
        "需求确认",
        StageKind::Open,
        0.15,
        Some(7),
    ),
    ("demo", "Demo", "产品演示", StageKind::Open, 0.30, Some(7)),
    ("trial", "Trial", "试用中", StageKind::Open, 0.45, Some(14)),
    (
        "proposal",
        "Proposal / quote",
        "方案报价",
        StageKind::Open,
        0.60,
        Some(10),
    ),
    (
        "negotiation",
        "Contract negotiation",
        "合同谈判",
        StageKind::Open,
        0.80,
        Some(7),
    ),
    WON,
    LOST,
];

/// Schools and training: a trial lesson and a talk with the parents lead
/// to enrolment.
const EDUCATION: &[StageRow] = &[
    ("lead", "Lead", "线索阶段", StageKind::Open, 0.05, Some(7)),
    (
        "initial_contact",
        "Initial contact",
        "初步接触",
        StageKind::Open,
        0.15,
        Some(5),
    ),
    (
        "trial_lesson",
        "Trial lesson",
        "试听课",
        StageKind::Open,
        0.40,
        Some(7),
    ),
    (
        "parent_talk",
        "Parent talk",
        "家长沟通",
        StageKind::Open,
        0.65,
        Some(5),
    ),
    (
        "enrolled",
        "Enrolled",
        "报名成交",
        StageKind::Won,
        1.0,
        None,
    ),
    LOST,
];

/// Financial products: a risk assessment comes before the proposal.
const FINANCE: &[StageRow] = &[
    ("lead", "Lead", "线索阶段", StageKind::Open, 0.05, Some(14)),
    (
        "initial_contact",
        "Initial contact",
        "初步接触",
        StageKind::Open,
        0.10,
        Some(10),
    ),
    (
        "needs_discovery",
        "Needs discovery",
        "需求了解",
        StageKind::Open,
        0.20,
        Some(14),
    ),
    (
        "risk_assessment",
        "Risk assessment",
        "风险评估",
        StageKind::Open,
        0.35,
        Some(14),
    ),
    (
        "proposal",
        "Proposal / quote",
        "方案报价",
        StageKind::Open,
        0.55,
        Some(10),
    ),
    (
        "intent_confirmed",
        "Intent confirmed",
        "意向确认",
        StageKind::Open,
        0.75,
        Some(7),
    ),
    WON,
    LOST,
];

/// Medical devices: visits to the hospital, a treatment plan, then the
/// hospital's procurement, which is slow, so those stages rot late.
const MEDICAL: &[StageRow] = &[
    ("lead", "Lead", "线索阶段", StageKind::Open, 0.05, Some(21)),
    (
        "first_visit",
        "First visit",
        "初次拜访",
        StageKind::Open,
        0.15,
        Some(21),
    ),
    (
        "follow_up_visit",
        "Follow-up visit",
        "复访",
        StageKind::Open,
        0.30,
        Some(21),
    ),
    (
        "treatment_plan",
        "Treatment plan",
        "诊疗方案",
        StageKind::Open,
        0.50,
        Some(30),
    ),
    (
        "procurement",
        "Procurement approval",
        "采购审批",
        StageKind::Open,
        0.70,
        Some(45),
    ),
    WON,
    LOST,
];

/// The names `createPipeline` accepts as `template`.
pub const PIPELINE_TEMPLATES: [&str; 5] = ["general", "saas", "education", "finance", "medical"];

fn localised(rows: &[StageRow], locale: &str) -> Vec<StageDefault> {
    rows.iter()
        .map(
            |&(key, en, zh, kind, win_probability, rotting_days)| StageDefault {
                key,
                name: if is_zh(locale) { zh } else { en },
                kind,
                win_probability,
                rotting_days,
                // Post-sale maintenance: won leads carry on there as customers.
                post_sale: key == "post_sale",
            },
        )
        .collect()
}

/// The default pipeline of SPEC §1, in order.
pub fn stages(locale: &str) -> Vec<StageDefault> {
    localised(GENERAL, locale)
}

/// The stages of the pipeline template `name` (one of
/// [`PIPELINE_TEMPLATES`]) in the tenant's locale; `None` for an unknown name.
pub fn pipeline_template(name: &str, locale: &str) -> Option<Vec<StageDefault>> {
    let rows = match name {
        "general" => GENERAL,
        "saas" => SAAS,
        "education" => EDUCATION,
        "finance" => FINANCE,
        "medical" => MEDICAL,
        _ => return None,
    };
    Some(localised(rows, locale))
}

/// The label of a default signal type.
pub fn signal_label(key: &str, locale: &str) -> String {
    let (en, zh) = match key {
        "website_visit" => ("Website visit", "访问网站"),
        "deep_page_view" => ("Deep page view (pricing, docs)", "深度浏览（价格、文档）"),
        "trial_activity" => ("Trial activity", "试用活跃"),
        "positive_feedback" => ("Positive feedback", "积极反馈"),
        "inbound_inquiry" => ("Inbound inquiry", "主动咨询"),
        "detail_question" => (
            "Detail question (integration, go-live)",
            "细节问题（集成、上线时间）",
        ),
        "meeting_request" => ("Asks for a meeting this week", "要求本周会面"),
        "urgent_quote_request" => ("Requests an urgent quote", "紧急索要报价"),
        "executive_invited" => ("Invites executives", "邀请高层参与"),
        "group_chat_created" => ("Forms a group chat", "拉群沟通"),
        "purchase" => ("Purchase", "购买"),
        "call" => ("Call", "电话"),
        "email" => ("Email", "邮件"),
        "meeting" => ("Meeting", "会议"),
        "no_show" => ("No-show", "爽约"),
        "complaint" => ("Complaint", "投诉"),
        "unsubscribed" => ("Unsubscribed", "退订"),
        other => return other.replace('_', " "),
    };
    if is_zh(locale) { zh } else { en }.to_owned()
}

/// The label of a default lead field.
pub fn field_label(key: &str, locale: &str) -> String {
    let (en, zh) = match key {
        "budget" => ("Budget", "预算"),
        "timeline" => ("Timeline", "时间线"),
        "authority" => ("Decision authority", "决策权"),
        "need" => ("Technical need", "技术需求"),
        "industry_position" => ("Industry position", "行业地位"),
        "decision_chain" => (
            "Decision chain (5 = one person decides)",
            "决策链（5 = 一人决策）",
        ),
        "source" => ("Source", "来源"),
        "company_size" => ("Company size", "公司规模"),
        other => return other.replace('_', " "),
    };
    if is_zh(locale) { zh } else { en }.to_owned()
}

/// The stored direction of a scoring-crate direction.
pub fn direction(direction: scoring::Direction) -> Direction {
    match direction {
        scoring::Direction::Inbound => Direction::Inbound,
        scoring::Direction::Outbound => Direction::Outbound,
    }
}

/// The stored field type of a scoring-crate field type.
pub fn field_type(field_type: scoring::FieldType) -> FieldType {
    match field_type {
        scoring::FieldType::Rating => FieldType::Rating,
        scoring::FieldType::Category => FieldType::Category,
        scoring::FieldType::Number => FieldType::Number,
        scoring::FieldType::Boolean => FieldType::Boolean,
        scoring::FieldType::Text => FieldType::Text,
        scoring::FieldType::Date => FieldType::Date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pipeline_has_one_won_and_one_lost_stage_in_both_locales() {
        for locale in ["en", "zh-CN"] {
            let stages = stages(locale);
            assert_eq!(stages.len(), 8);
            assert_eq!(
                stages.iter().filter(|s| s.kind == StageKind::Won).count(),
                1
            );
            assert_eq!(
                stages.iter().filter(|s| s.kind == StageKind::Lost).count(),
                1
            );
        }
        let zh: Vec<&str> = stages("zh-CN").iter().map(|s| s.name).collect();
        assert_eq!(
            zh,
            [
                "线索阶段",
                "初步接触",
                "需求了解",
                "方案报价",
                "意向确认",
                "签约/成交",
                "后续维护",
                "已流失"
            ]
        );
    }

    #[test]
    fn every_default_signal_and_field_has_a_label_in_both_locales() {
        let catalog = scoring::templates::default_catalog();
        for signal in &catalog.signals {
            assert_ne!(
                signal_label(&signal.key, "en"),
                signal.key.replace('_', " "),
                "{}",
                signal.key
            );
            assert_ne!(
                signal_label(&signal.key, "zh-CN"),
                signal_label(&signal.key, "en"),
                "{}",
                signal.key
            );
        }
        for field in &catalog.fields {
            assert_ne!(
                field_label(&field.key, "en"),
                field.key.replace('_', " "),
                "{}",
                field.key
            );
            assert_ne!(
                field_label(&field.key, "zh-CN"),
                field_label(&field.key, "en"),
                "{}",
                field.key
            );
        }
    }

    #[test]
    fn the_default_model_validates_against_the_default_catalog() {
        let catalog = scoring::templates::default_catalog();
        assert!(scoring::templates::general().validate(&catalog).is_ok());
    }
}
