// Simplified Chinese: the agent page's texts (English text -> Chinese).
export default {
};
