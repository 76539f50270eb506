#include "secrets/host_catalogue.h"

namespace kz {

const std::vector<CatalogueEntry>& host_catalogue() {
  static const std::vector<CatalogueEntry> entries = {
      {"OPENAI_API_KEY", {"api.openai.com"}},
      {"ANTHROPIC_API_KEY", {"api.anthropic.com"}},
      {"GITHUB_TOKEN", {"github.com", "api.github.com", "uploads.github.com", "raw.githubusercontent.com"}},
      {"GH_TOKEN", {"github.com", "api.github.com", "uploads.github.com", "raw.githubusercontent.com"}},
      {"GITLAB_TOKEN", {"gitlab.com"}},
      {"SLACK_BOT_TOKEN", {"slack.com", "*.slack.com"}},
      {"SLACK_TOKEN", {"slack.com", "*.slack.com"}},
      {"HF_TOKEN", {"huggingface.co", "*.huggingface.co"}},
      {"HUGGING_FACE_HUB_TOKEN", {"huggingface.co", "*.huggingface.co"}},
      {"SERPAPI_API_KEY", {"serpapi.com"}},
      {"GEMINI_API_KEY", {"generativelanguage.googleapis.com"}},
      {"GOOGLE_API_KEY", {"generativelanguage.googleapis.com"}},
      {"MISTRAL_API_KEY", {"api.mistral.ai"}},
      {"GROQ_API_KEY", {"api.groq.com"}},
      {"COHERE_API_KEY", {"api.cohere.com", "api.cohere.ai"}},
      {"TOGETHER_API_KEY", {"api.together.xyz"}},
      {"PERPLEXITY_API_KEY", {"api.perplexity.ai"}},
      {"DEEPSEEK_API_KEY", {"api.deepseek.com"}},
      {"XAI_API_KEY", {"api.x.ai"}},
      {"REPLICATE_API_TOKEN", {"api.replicate.com"}},
      {"TAVILY_API_KEY", {"api.tavily.com"}},
      {"PINECONE_API_KEY", {"*.pinecone.io"}},
      {"STRIPE_API_KEY", {"api.stripe.com"}},
      {"SENDGRID_API_KEY", {"api.sendgrid.com"}},
      {"NOTION_API_KEY", {"api.notion.com"}},
      {"LINEAR_API_KEY", {"api.linear.app"}},
  };
  return entries;
}

std::vector<std::string> catalogue_hosts(const std::string& env_name) {
  for (const auto& e : host_catalogue())
    if (env_name == e.name) return e.hosts;
  return {};
}

}  // namespace kz
