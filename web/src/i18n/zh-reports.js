// Simplified Chinese: the reports page's texts (English text -> Chinese).
export default {
};
