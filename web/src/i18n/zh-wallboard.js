// Simplified Chinese: the wallboard page's texts (English text -> Chinese).
export default {
};
